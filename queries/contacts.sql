-- CRM contacts; the firmographic columns here are the dimensions of every CRM metric.
-- `channel` is the marketing channel that created the lead (its lead source), so CRM numbers
-- can be put next to ad and web numbers by channel.
SELECT contact_id, created_at, lead_source, lead_source AS channel, company_size, industry, region, owner
FROM crm.contacts
