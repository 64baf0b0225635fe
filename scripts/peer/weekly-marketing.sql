-- The DuckDB peer of `kpi report weekly-marketing --week W`: the same work, written as a
-- DuckDB user would write it, run by scripts/peer-report in one cold process.
--
-- Placeholders (replaced by scripts/peer-report): {data} the data root; {first} and {last}
-- the first and last day (local dates) of the weeks the report reads: its 13 trend weeks, the
-- week before them (previous) and the same weeks a year earlier (year_ago); {week_start} and
-- {week_end} the report week. Weeks are Monday weeks in America/New_York, as in kpi.toml.
--
-- The work, as kpi's report does it:
--   1. the de-duplicating `reporting` views of queries/ (materialised once, as DuckDB users do);
--   2. every KPI of the dashboard as a weekly series over the weeks above (simple, ratio,
--      derived, quarter-to-date and the MQL -> SQL 30-day conversion cohorts);
--   3. the channel breakdown of the report week, the MQL-by-channel chart and ad clicks
--      against analytics sessions by platform;
--      what changed: the moving KPIs by channel; the tracking conventions of the report week;
--   4. exact-duplicate counts and the latest day of every table the dashboard reads;
--   5. pipeline attributed by channel under four heuristic models (first touch, last touch,
--      linear, position-based; 30-day lookback) with window functions.
SET TimeZone = 'UTC';

-- 1. Views.
CREATE TEMP TABLE campaign_daily AS
SELECT DISTINCT date, platform, campaign_id, campaign_name AS campaign, channel, impressions,
       clicks, spend, currency, platform_conversions
FROM read_parquet('{data}/ads/campaign_daily/**/*.parquet', hive_partitioning = true, union_by_name = true);

CREATE TEMP TABLE sessions AS
SELECT DISTINCT session_id, anonymous_id, contact_id, started_at, landing_page,
       lower(utm_source) AS utm_source, lower(utm_medium) AS utm_medium,
       lower(utm_campaign) AS utm_campaign, lower(utm_content) AS utm_content, channel,
       CASE WHEN lower(utm_medium) IN ('cpc', 'paid_social') THEN
         CASE lower(utm_source) WHEN 'google' THEN 'google_ads' WHEN 'facebook' THEN 'meta_ads'
                                WHEN 'linkedin' THEN 'linkedin_ads' END END AS platform,
       device, country, pageviews
FROM read_parquet('{data}/analytics/sessions/**/*.parquet', hive_partitioning = true, union_by_name = true);

CREATE TEMP TABLE contacts AS
SELECT contact_id, created_at, lead_source, lead_source AS channel, company_size, industry, region, owner
FROM read_parquet('{data}/crm/contacts/**/*.parquet', hive_partitioning = true, union_by_name = true);

CREATE TEMP TABLE lifecycle_changes AS
SELECT l.contact_id, l.changed_at, l.from_stage, l.to_stage, c.lead_source, c.channel,
       c.company_size, c.industry, c.region
FROM read_parquet('{data}/crm/lifecycle_changes/**/*.parquet', hive_partitioning = true, union_by_name = true) AS l
JOIN contacts AS c ON c.contact_id = l.contact_id;

CREATE TEMP TABLE opportunities AS
SELECT o.opportunity_id, o.contact_id, o.created_at, o.closed_at, o.status, o.amount, o.currency,
       c.lead_source, c.channel, c.company_size, c.industry, c.region
FROM read_parquet('{data}/crm/opportunities/**/*.parquet', hive_partitioning = true, union_by_name = true) AS o
JOIN contacts AS c ON c.contact_id = o.contact_id;

CREATE TEMP TABLE form_submits AS
SELECT e.event_id, e.session_id, e.occurred_at, e.page, s.channel, s.platform, s.device, s.country
FROM read_parquet('{data}/analytics/events/**/*.parquet', hive_partitioning = true, union_by_name = true) AS e
JOIN sessions AS s ON s.session_id = e.session_id
WHERE e.name = 'form_submit';

CREATE TEMP TABLE email_sends AS
SELECT send_id, email_campaign_id, contact_id, sent_at, delivered, opened_at, clicked_at, unsubscribed
FROM read_parquet('{data}/email/sends/**/*.parquet', hive_partitioning = true, union_by_name = true);

-- The local week of an instant or a date.
CREATE MACRO week_of(t) AS date_trunc('week', timezone('America/New_York', t::TIMESTAMPTZ))::DATE;
CREATE MACRO week_of_date(d) AS date_trunc('week', d)::DATE;
CREATE MACRO in_range(w) AS w BETWEEN DATE '{first}' AND DATE '{last}';

-- 2. Every KPI as a weekly series.
SELECT 'spend' AS metric, week_of_date(date) AS week, sum(spend) AS value
FROM campaign_daily WHERE in_range(week_of_date(date)) GROUP BY ALL ORDER BY week;
SELECT 'clicks', week_of_date(date) AS week, sum(clicks), sum(impressions)
FROM campaign_daily WHERE in_range(week_of_date(date)) GROUP BY ALL ORDER BY week;
SELECT 'sessions', week_of(started_at) AS week, count(DISTINCT session_id)
FROM sessions WHERE in_range(week_of(started_at)) GROUP BY ALL ORDER BY week;
SELECT 'form_submits', week_of(occurred_at) AS week, count(DISTINCT event_id)
FROM form_submits WHERE in_range(week_of(occurred_at)) GROUP BY ALL ORDER BY week;
SELECT 'mqls', week_of(changed_at) AS week, count(DISTINCT contact_id)
FROM lifecycle_changes WHERE to_stage = 'mql' AND in_range(week_of(changed_at)) GROUP BY ALL ORDER BY week;
SELECT 'sqls', week_of(changed_at) AS week, count(DISTINCT contact_id)
FROM lifecycle_changes WHERE to_stage = 'sql' AND in_range(week_of(changed_at)) GROUP BY ALL ORDER BY week;
SELECT 'new_contacts', week_of(created_at) AS week, count(DISTINCT contact_id)
FROM contacts WHERE in_range(week_of(created_at)) GROUP BY ALL ORDER BY week;
SELECT 'pipeline_created', week_of(created_at) AS week, sum(amount)
FROM opportunities WHERE in_range(week_of(created_at)) GROUP BY ALL ORDER BY week;
SELECT 'closed_won_revenue', week_of(closed_at) AS week, sum(amount)
FROM opportunities WHERE status = 'won' AND in_range(week_of(closed_at)) GROUP BY ALL ORDER BY week;
SELECT 'email_click_rate', week_of(sent_at) AS week,
       count(DISTINCT send_id) FILTER (WHERE delivered AND clicked_at IS NOT NULL)
         / count(DISTINCT send_id) FILTER (WHERE delivered)
FROM email_sends WHERE in_range(week_of(sent_at)) GROUP BY ALL ORDER BY week;
-- cost per MQL: spend and MQLs of the same week, divided.
SELECT 'cost_per_mql', s.week, s.spend / m.mqls
FROM (SELECT week_of_date(date) AS week, sum(spend) AS spend FROM campaign_daily GROUP BY ALL) AS s
JOIN (SELECT week_of(changed_at) AS week, count(DISTINCT contact_id) AS mqls
      FROM lifecycle_changes WHERE to_stage = 'mql' GROUP BY ALL) AS m USING (week)
WHERE in_range(s.week) ORDER BY s.week;
-- pipeline quarter to date at the end of each week.
WITH days AS (
  SELECT timezone('America/New_York', created_at::TIMESTAMPTZ)::DATE AS day, sum(amount) AS amount
  FROM opportunities GROUP BY ALL),
weeks AS (SELECT DISTINCT week_of(created_at) AS week FROM opportunities WHERE in_range(week_of(created_at)))
SELECT 'pipeline_created_qtd', w.week, sum(d.amount)
FROM weeks AS w JOIN days AS d
  ON d.day BETWEEN date_trunc('quarter', w.week + 6)::DATE AND w.week + 6
GROUP BY ALL ORDER BY w.week;
-- MQL -> SQL within 30 days, per cohort week of the first MQL.
WITH first_mql AS (
  SELECT contact_id, min(changed_at) AS at FROM lifecycle_changes WHERE to_stage = 'mql' GROUP BY ALL),
sql_reached AS (
  SELECT contact_id, changed_at AS at FROM lifecycle_changes WHERE to_stage = 'sql')
SELECT 'mql_to_sql_30d', week_of(m.at) AS week,
       count(DISTINCT s.contact_id) / count(DISTINCT m.contact_id)
FROM first_mql AS m
LEFT JOIN sql_reached AS s
  ON s.contact_id = m.contact_id AND s.at >= m.at AND s.at <= m.at + INTERVAL 30 DAY
WHERE in_range(week_of(m.at)) GROUP BY ALL ORDER BY week;

-- 3. Breakdowns of the report week (this week and the comparison weeks, by channel).
SELECT 'spend by channel', week_of_date(date) AS week, channel, sum(spend), sum(clicks)
FROM campaign_daily WHERE in_range(week_of_date(date)) GROUP BY ALL ORDER BY ALL;
SELECT 'mqls by channel', week_of(changed_at) AS week, channel, count(DISTINCT contact_id)
FROM lifecycle_changes WHERE to_stage = 'mql' AND in_range(week_of(changed_at)) GROUP BY ALL ORDER BY ALL;
SELECT 'clicks by platform', platform, sum(clicks)
FROM campaign_daily WHERE date BETWEEN DATE '{week_start}' AND DATE '{week_end}' GROUP BY ALL ORDER BY ALL;
SELECT 'sessions by platform', platform, count(DISTINCT session_id)
FROM sessions WHERE week_of(started_at) = DATE '{week_start}' GROUP BY ALL ORDER BY ALL;

-- 3b. What changed: the KPIs that move, by channel, in every week read (kpi asks the movers
--     by the breakdown dimension for the report week and the week before).
SELECT 'pipeline by channel', week_of(created_at) AS week, channel, sum(amount)
FROM opportunities WHERE in_range(week_of(created_at)) GROUP BY ALL ORDER BY ALL;
SELECT 'won by channel', week_of(closed_at) AS week, channel, sum(amount)
FROM opportunities WHERE status = 'won' AND in_range(week_of(closed_at)) GROUP BY ALL ORDER BY ALL;
SELECT 'sqls by channel', week_of(changed_at) AS week, channel, count(DISTINCT contact_id)
FROM lifecycle_changes WHERE to_stage = 'sql' AND in_range(week_of(changed_at)) GROUP BY ALL ORDER BY ALL;
SELECT 'sessions by channel', week_of(started_at) AS week, channel, count(DISTINCT session_id)
FROM sessions WHERE in_range(week_of(started_at)) GROUP BY ALL ORDER BY ALL;

-- 3c. Tracking conventions of kpi.toml on the landed rows of the report week: breaking rows,
--     the sessions or spend they carry, by offending value.
CREATE TEMP TABLE raw_sessions AS
SELECT * FROM read_parquet('{data}/analytics/sessions/**/*.parquet', hive_partitioning = true, union_by_name = true)
WHERE week_of(started_at) = DATE '{week_start}';
SELECT 'utm_source', utm_source, count(*), count(DISTINCT session_id) FROM raw_sessions
WHERE coalesce(utm_source, '') <> '' AND NOT regexp_matches(utm_source, '^[a-z0-9]+$') GROUP BY ALL ORDER BY 3 DESC;
SELECT 'utm_medium', utm_medium, count(*), count(DISTINCT session_id) FROM raw_sessions
WHERE coalesce(utm_medium, '') <> '' AND utm_medium NOT IN ('cpc', 'paid_social', 'social', 'email', 'referral') GROUP BY ALL ORDER BY 3 DESC;
SELECT 'utm_campaign', utm_campaign, count(*), count(DISTINCT session_id) FROM raw_sessions
WHERE coalesce(utm_campaign, '') <> '' AND NOT regexp_matches(utm_campaign, '^[a-z0-9]+(-[a-z0-9]+)*$') GROUP BY ALL ORDER BY 3 DESC;
SELECT 'required', count(*) FILTER (WHERE coalesce(utm_source, '') = ''), count(*) FILTER (WHERE coalesce(utm_medium, '') = ''),
       count(*) FILTER (WHERE coalesce(utm_campaign, '') = '')
FROM raw_sessions WHERE coalesce(utm_source, '') <> '' OR coalesce(utm_medium, '') <> '' OR coalesce(utm_campaign, '') <> '';
SELECT 'campaign_name', campaign_name, count(*), sum(spend)
FROM read_parquet('{data}/ads/campaign_daily/**/*.parquet', hive_partitioning = true, union_by_name = true)
WHERE date BETWEEN DATE '{week_start}' AND DATE '{week_end}' AND NOT regexp_matches(campaign_name, '^[A-Z][A-Za-z0-9 -]*$')
GROUP BY ALL ORDER BY 3 DESC;

-- 4. Data health: exact duplicates and the latest day of every table read.
SELECT 'duplicates ads.campaign_daily', count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM read_parquet('{data}/ads/campaign_daily/**/*.parquet', hive_partitioning = true, union_by_name = true)))
FROM read_parquet('{data}/ads/campaign_daily/**/*.parquet', hive_partitioning = true, union_by_name = true);
SELECT 'duplicates analytics.sessions', count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM read_parquet('{data}/analytics/sessions/**/*.parquet', hive_partitioning = true, union_by_name = true)))
FROM read_parquet('{data}/analytics/sessions/**/*.parquet', hive_partitioning = true, union_by_name = true);
SELECT 'duplicates analytics.events', count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM read_parquet('{data}/analytics/events/**/*.parquet', hive_partitioning = true, union_by_name = true)))
FROM read_parquet('{data}/analytics/events/**/*.parquet', hive_partitioning = true, union_by_name = true);
SELECT 'duplicates crm.contacts', count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM read_parquet('{data}/crm/contacts/**/*.parquet', hive_partitioning = true, union_by_name = true)))
FROM read_parquet('{data}/crm/contacts/**/*.parquet', hive_partitioning = true, union_by_name = true);
SELECT 'duplicates crm.lifecycle_changes', count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM read_parquet('{data}/crm/lifecycle_changes/**/*.parquet', hive_partitioning = true, union_by_name = true)))
FROM read_parquet('{data}/crm/lifecycle_changes/**/*.parquet', hive_partitioning = true, union_by_name = true);
SELECT 'duplicates crm.opportunities', count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM read_parquet('{data}/crm/opportunities/**/*.parquet', hive_partitioning = true, union_by_name = true)))
FROM read_parquet('{data}/crm/opportunities/**/*.parquet', hive_partitioning = true, union_by_name = true);
SELECT 'duplicates email.sends', count(*) - (SELECT count(*) FROM (SELECT DISTINCT * FROM read_parquet('{data}/email/sends/**/*.parquet', hive_partitioning = true, union_by_name = true)))
FROM read_parquet('{data}/email/sends/**/*.parquet', hive_partitioning = true, union_by_name = true);
SELECT 'latest', max(date)::VARCHAR FROM campaign_daily
UNION ALL SELECT 'latest', max(started_at)::VARCHAR FROM sessions
UNION ALL SELECT 'latest', max(occurred_at)::VARCHAR FROM form_submits
UNION ALL SELECT 'latest', max(changed_at)::VARCHAR FROM lifecycle_changes
UNION ALL SELECT 'latest', max(created_at)::VARCHAR FROM contacts
UNION ALL SELECT 'latest', max(created_at)::VARCHAR FROM opportunities
UNION ALL SELECT 'latest', max(closed_at)::VARCHAR FROM opportunities
UNION ALL SELECT 'latest', max(sent_at)::VARCHAR FROM email_sends;

-- 5. Pipeline attributed by channel under four models (30-day lookback, both ends inclusive;
--    paths ordered by (touch time, touch id); a conversion with no touch goes to
--    (unattributed)).
CREATE TEMP TABLE paths AS
WITH touches AS (
  SELECT DISTINCT session_id AS touch_id, contact_id AS entity_id, started_at AS touched_at, channel
  FROM sessions WHERE contact_id IS NOT NULL),
conversions AS (
  SELECT 'opp:' || opportunity_id AS conversion_id, contact_id AS entity_id,
         created_at AS converted_at, amount
  FROM opportunities)
SELECT c.conversion_id, c.converted_at, c.amount, coalesce(t.channel, '(unattributed)') AS channel,
       row_number() OVER (PARTITION BY c.conversion_id ORDER BY t.touched_at, t.touch_id) AS pos,
       count(*) OVER (PARTITION BY c.conversion_id) AS n
FROM conversions AS c
LEFT JOIN touches AS t
  ON t.entity_id = c.entity_id
 AND t.touched_at >= c.converted_at - INTERVAL 30 DAY AND t.touched_at <= c.converted_at;
SELECT week_of(converted_at) AS week, channel,
       sum(amount * (pos = 1)::INT) AS first_touch,
       sum(amount * (pos = n)::INT) AS last_touch,
       sum(amount / n) AS linear,
       sum(amount * CASE WHEN n = 1 THEN 1.0 WHEN n = 2 THEN 0.5
                         WHEN pos = 1 OR pos = n THEN 0.4 ELSE 0.2 / (n - 2) END) AS position_based
FROM paths WHERE in_range(week_of(converted_at)) GROUP BY ALL ORDER BY ALL;
