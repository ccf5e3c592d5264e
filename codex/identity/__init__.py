"""Who a request comes from: API keys and signed learner tokens (credentials.py), and
whose sessions they may use (access.py). Off unless configured."""
