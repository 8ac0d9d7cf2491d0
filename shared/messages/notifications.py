"""Messages published by the notifications service (routing keys notification.*)."""
