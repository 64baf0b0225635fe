-- Email sends as landed (the email platform export has one row per send).
SELECT send_id, email_campaign_id, contact_id, sent_at, delivered, opened_at, clicked_at, unsubscribed
FROM email.sends
