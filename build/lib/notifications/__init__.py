"""Email notifications: templates, the outbox and the SMTP mailer."""
