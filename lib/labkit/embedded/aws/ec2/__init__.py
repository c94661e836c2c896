"""Embedded EC2 additions: spot price history with realistic prices (moto answers a constant)."""
