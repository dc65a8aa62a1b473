"""One module per wire protocol, each a `Sender`: an attempt in, an `Outcome` out."""
