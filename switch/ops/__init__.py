"""The switch's operations API for bank operations staff: journal queries, SAF, stats, settlement."""
