"""Readers for the released on-disk dataset layouts (LLP, UnAV-100, AVE, features)."""
