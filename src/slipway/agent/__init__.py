"""The agent: what runs on every host (the control host too), standard library only."""
