"""csvboard: ERP CSV exports into dashboards, an auditable run ledger and kiosk boards."""
