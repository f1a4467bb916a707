"""Turning sources (files, folders, S3 objects, inline text or base64) into embeddable segments."""
