"""The HTTP routes every integration shares: one OAuth callback and one webhook route."""
