"""The login portal: sign-in (password, second factor, SSO), sessions, account page."""
