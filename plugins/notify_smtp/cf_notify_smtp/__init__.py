"""CallFort plugin notify_smtp: Alert notification by e-mail over SMTP."""
