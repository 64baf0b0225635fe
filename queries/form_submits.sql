-- Form submit events with the channel, device and country of the session they happened in.
SELECT
    e.event_id,
    e.session_id,
    e.anonymous_id,
    e.contact_id,
    e.occurred_at,
    e.page,
    s.channel,
    s.platform,
    s.device,
    s.country
FROM analytics.events AS e
JOIN reporting.sessions AS s ON s.session_id = e.session_id
WHERE e.name = 'form_submit'
