"""Agent builders and the custom trainers that no SB3 algorithm covers."""
