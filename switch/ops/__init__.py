"""The switch's operations API for bank operations staff: journal queries, SAF, stats, settlement,
operator actions, tokens (roles and bank scope) and the audit log; `sembako ops` on the CLI."""
