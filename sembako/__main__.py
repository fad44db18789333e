from sembako.cli import main

main()
