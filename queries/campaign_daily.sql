-- Ad campaign days with exact duplicate export rows removed.
-- The ad platforms re-send a row now and then; a duplicate is identical in every column.
-- `campaign` is the human campaign name, the dimension reports slice by.
SELECT DISTINCT
    date,
    platform,
    campaign_id,
    campaign_name AS campaign,
    channel,
    impressions,
    clicks,
    spend,
    currency,
    platform_conversions
FROM ads.campaign_daily
