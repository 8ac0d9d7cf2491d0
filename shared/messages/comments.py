"""Messages published by the comments service (routing keys comment.*)."""
