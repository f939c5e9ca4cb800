"""Identity rules: passwords, throttling, redirects, claim mapping — pure, no I/O."""
