"""Vector stores with S3 Vectors semantics: the real service (`s3vectors`) and the embedded default (`local`)."""
