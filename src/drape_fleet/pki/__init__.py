"""The fleet's TLS PKI for the Docker API: a CA, one server certificate per host, one client certificate for
the backend. ``paths`` needs only the standard library (the runtime imports it); ``authority`` makes the
files (it needs ``cryptography``, from the ops extra)."""
