-- Marketing touches for attribution (see /attribution): every web session tied to a known
-- CRM contact. One row per session_id (re-landed duplicates collapse); the channel is the
-- analytics channel, the campaign the lower-cased utm_campaign.
SELECT DISTINCT
    session_id AS touch_id,
    contact_id AS entity_id,
    started_at AS touched_at,
    channel,
    lower(utm_campaign) AS campaign
FROM analytics.sessions
WHERE contact_id IS NOT NULL
