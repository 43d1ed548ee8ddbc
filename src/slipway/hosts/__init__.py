"""The fleet: hosts (the control host is one of them), how to reach them, what runs where."""
