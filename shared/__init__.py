"""What two services of the Sembako network truly share: codes, card numbers, money, PIN blocks."""

import warnings

# psec reaches TripleDES through cryptography's old import path and warns on every call; TDES
# is what payment terminals use, so the deprecation is expected here and not actionable.
warnings.filterwarnings("ignore", message=".*TripleDES.*", module="psec")
