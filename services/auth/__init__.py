"""Who may use the console and what they may do: roles and the actor, the users file, sign-in throttling."""
