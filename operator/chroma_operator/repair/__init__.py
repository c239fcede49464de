"""Anti-entropy: digest every replica of every collection, fix only what differs."""
