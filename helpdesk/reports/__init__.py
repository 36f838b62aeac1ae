"""Reports: volume, response times and service-level breaches for a period (issue 5 item 6)."""
