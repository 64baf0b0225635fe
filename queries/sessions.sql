-- Web sessions, one row per session_id: exact duplicate rows removed and UTM values
-- lower-cased (the landed data has "Google", "GOOGLE" and "google"). `platform` names the ad
-- platform a paid session came from, in the ad exports' terms, so that ad clicks and sessions
-- can be compared per platform.
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
    CASE
        WHEN lower(utm_medium) IN ('cpc', 'paid_social') THEN
            CASE lower(utm_source)
                WHEN 'google' THEN 'google_ads'
                WHEN 'facebook' THEN 'meta_ads'
                WHEN 'linkedin' THEN 'linkedin_ads'
            END
    END AS platform,
    device,
    country,
    pageviews
FROM analytics.sessions
