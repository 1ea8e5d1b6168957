"""CallFort plugin store_s3: Media store on S3-compatible object storage with Object Lock."""
