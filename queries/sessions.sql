-- Web sessions, one row per session_id: exact duplicate rows removed and UTM values
-- lower-cased (the landed data has "Google", "GOOGLE" and "google").
SELECT DISTINCT
    session_id,
    anonymous_id,
    contact_id,
    started_at,
    landing_page,
    lower(utm_source) AS utm_source,
    lower(utm_medium) AS utm_medium,
    lower(utm_campaign) AS utm_campaign,
    lower(utm_content) AS utm_content,
    channel,
    device,
    country,
    pageviews
FROM analytics.sessions
