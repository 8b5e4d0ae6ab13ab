"""Talking to a cluster: the connection (client.py), reading live state, diff, plan, apply."""
