"""The run ledger: runs, their client rows and exactly-once outcome counting; client health."""
