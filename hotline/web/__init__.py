"""The pages `hotline serve` answers over HTTP: sign-in and the agent's screen."""
