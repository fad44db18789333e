"""The switch: ISO 8583 listener for EDC terminals, routing to the banks, journal and SAF."""
