"""What the DNS tests share."""

ZONE = "drape.dev"
