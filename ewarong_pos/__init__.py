"""e-Warong point of sale: catalogue, cart, HET prices and stock, driving the EDC core in-process."""
