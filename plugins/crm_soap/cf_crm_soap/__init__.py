"""CallFort plugin crm_soap: CRM integration over SOAP (not yet implemented: no hooks)."""
