"""CallFort plugin store_local: Media store on a local file system."""
