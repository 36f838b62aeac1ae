"""Privacy (GDPR) requests as ticket workflows: intake, verification, deadlines, fulfilment."""
