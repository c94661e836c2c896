"""Embedded CloudFormation additions: deleting the EC2 types moto cannot delete, and list parameters."""
