"""What two services of the Sembako network truly share: codes, card numbers, money, PIN blocks."""
