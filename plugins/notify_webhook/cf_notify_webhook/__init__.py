"""CallFort plugin notify_webhook: Alert notification by HMAC-signed HTTP webhook."""
