"""CallFort plugin pbx_avaya: Capture from Avaya (not yet implemented: no hooks)."""
