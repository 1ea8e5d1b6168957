"""CallFort plugin pbx_asterisk: Capture from Asterisk through the Asterisk Manager Interface (AMI)."""
