"""Test-only fakes of AWS services that moto cannot play (Bedrock runtime for Nova)."""
