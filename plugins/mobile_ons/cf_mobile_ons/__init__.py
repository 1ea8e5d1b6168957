"""CallFort plugin mobile_ons: Mobile advisors: ONS legs via the PBX and dial-in mobile recording (not yet implemented: no hooks)."""
