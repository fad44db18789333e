"""Bank penyalur: one instance per Himbara bank holding KPM accounts, KKS cards and the ledger."""
