//! The day-by-day simulation: visitors, sessions, contacts, stages, opportunities and email
//! sends, as rows; flushed month by month to the writer.

use std::collections::{BTreeMap, VecDeque};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;

use super::rng::Rng;
use super::world::*;
use super::write::*;
use super::DemoOptions;
use crate::error::Result;

#[derive(Clone)]
pub(super) struct Visitor {
    pub(super) anonymous_id: String,
    pub(super) contact_id: Option<String>,
}

#[derive(Clone)]
pub(super) struct AdRow {
    pub(super) date: i32,
    pub(super) platform: &'static str,
    pub(super) campaign_id: &'static str,
    pub(super) campaign_name: &'static str,
    pub(super) channel: &'static str,
    pub(super) impressions: i64,
    pub(super) clicks: i64,
    pub(super) spend_cents: i128,
    pub(super) platform_conversions: i64,
}

#[derive(Clone)]
pub(super) struct SessionRow {
    pub(super) session_id: String,
    pub(super) anonymous_id: String,
    pub(super) contact_id: Option<String>,
    pub(super) started_at: i64,
    pub(super) landing_page: &'static str,
    pub(super) utm_source: Option<String>,
    pub(super) utm_medium: Option<String>,
    pub(super) utm_campaign: Option<String>,
    pub(super) utm_content: Option<String>,
    pub(super) channel: &'static str,
    pub(super) device: &'static str,
    pub(super) country: &'static str,
    pub(super) pageviews: i32,
}

pub(super) struct EventRow {
    pub(super) event_id: String,
    pub(super) session_id: String,
    pub(super) anonymous_id: String,
    pub(super) contact_id: Option<String>,
    pub(super) occurred_at: i64,
    pub(super) name: &'static str,
    pub(super) page: &'static str,
}

pub(super) struct ContactRow {
    pub(super) contact_id: String,
    pub(super) created_at: i64,
    pub(super) lead_source: String,
    pub(super) company_size: &'static str,
    pub(super) industry: &'static str,
    pub(super) region: &'static str,
    pub(super) owner: &'static str,
}

pub(super) struct StageRow {
    pub(super) contact_id: String,
    pub(super) changed_at: i64,
    pub(super) from_stage: Option<&'static str>,
    pub(super) to_stage: &'static str,
}

pub(super) struct OpportunityRow {
    pub(super) opportunity_id: String,
    pub(super) contact_id: String,
    pub(super) created_at: i64,
    pub(super) closed_at: Option<i64>,
    pub(super) status: &'static str,
    pub(super) amount_cents: i128,
}

pub(super) struct SendRow {
    pub(super) send_id: String,
    pub(super) email_campaign_id: String,
    pub(super) contact_id: String,
    pub(super) sent_at: i64,
    pub(super) delivered: bool,
    pub(super) opened_at: Option<i64>,
    pub(super) clicked_at: Option<i64>,
    pub(super) unsubscribed: bool,
}

pub(super) struct Simulation {
    pub(super) rng: Rng,
    pub(super) tz: Tz,
    pub(super) scale: f64,
    pub(super) end: NaiveDate,
    /// Exclusive end of the data, as an instant (micros): nothing happens after it.
    pub(super) horizon: i64,
    /// Recent visitors; `visitor_base` is the number evicted from the front, so a visitor's
    /// global index stays valid while it is in the pool (O(1) eviction).
    pub(super) visitors: VecDeque<Visitor>,
    pub(super) visitor_base: usize,
    pub(super) contact_visitor: BTreeMap<String, usize>,
    pub(super) subscribed_index: BTreeMap<String, usize>,
    pub(super) subscribed: Vec<(String, bool)>,
    pub(super) pending_nurture: Vec<(i64, String, u8)>,
    pub(super) email_clicks: Vec<(i64, String)>,
    pub(super) next_id: BTreeMap<&'static str, u64>,
    pub(super) ads: Vec<AdRow>,
    pub(super) late_ads: Vec<AdRow>,
    pub(super) late_day: NaiveDate,
    pub(super) sessions: Vec<SessionRow>,
    pub(super) events: Vec<EventRow>,
    pub(super) sends: Vec<SendRow>,
    pub(super) contacts: Vec<ContactRow>,
    pub(super) stages: Vec<StageRow>,
    pub(super) opportunities: Vec<OpportunityRow>,
}

impl Simulation {
    pub(super) fn new(options: &DemoOptions) -> Self {
        let horizon_day = options.end + Duration::days(1);
        Self {
            rng: Rng(options.seed ^ 0x6b70_6920_6465_6d6f),
            tz: options.time_zone,
            scale: options.scale,
            end: options.end,
            horizon: local_micros(options.time_zone, horizon_day, NaiveTime::MIN),
            visitors: VecDeque::new(),
            visitor_base: 0,
            contact_visitor: BTreeMap::new(),
            subscribed_index: BTreeMap::new(),
            subscribed: Vec::new(),
            pending_nurture: Vec::new(),
            email_clicks: Vec::new(),
            next_id: BTreeMap::new(),
            ads: Vec::new(),
            late_ads: Vec::new(),
            late_day: options.end - Duration::days(9),
            sessions: Vec::new(),
            events: Vec::new(),
            sends: Vec::new(),
            contacts: Vec::new(),
            stages: Vec::new(),
            opportunities: Vec::new(),
        }
    }

    pub(super) fn id(&mut self, prefix: &'static str) -> String {
        let counter = self.next_id.entry(prefix).or_insert(0);
        *counter += 1;
        format!("{prefix}{:07}", *counter)
    }

    /// Traffic multiplier of a day: growth, weekly rhythm, seasons and holidays.
    pub(super) fn day_factor(day: NaiveDate, t: f64) -> f64 {
        let weekday = match day.weekday() {
            Weekday::Mon => 1.06,
            Weekday::Tue => 1.10,
            Weekday::Wed => 1.08,
            Weekday::Thu => 1.02,
            Weekday::Fri => 0.86,
            Weekday::Sat => 0.46,
            Weekday::Sun => 0.50,
        };
        let season =
            1.0 + 0.08 * ((day.ordinal() as f64 / 365.25) * std::f64::consts::TAU - 1.2).sin();
        let (month, dom) = (day.month(), day.day());
        let holiday = if (month == 12 && dom >= 22) || (month == 1 && dom <= 2) {
            0.42
        } else if NaiveDate::from_weekday_of_month_opt(day.year(), 11, Weekday::Thu, 4)
            .is_some_and(|thanksgiving| (0..4).contains(&(day - thanksgiving).num_days()))
        {
            0.62
        } else if month == 7 && dom == 4 {
            0.6
        } else {
            1.0
        };
        (1.0 + 0.3 * t) * weekday * season * holiday
    }

    pub(super) fn time_of_day(&mut self) -> NaiveTime {
        // Business hours dominate: a mixture of a day-time bump and a flat background.
        let hours = if self.rng.chance(0.8) {
            (8.0 + 10.0 * (self.rng.unit() + self.rng.unit()) / 2.0).min(23.99)
        } else {
            self.rng.unit() * 24.0
        };
        let seconds = (hours * 3600.0) as u32;
        NaiveTime::from_num_seconds_from_midnight_opt(seconds.min(86_399), 0)
            .unwrap_or(NaiveTime::MIN)
    }

    pub(super) fn simulate_day(&mut self, day: NaiveDate, t: f64) {
        let factor = Self::day_factor(day, t);
        let date = (day - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(day)).num_days() as i32;

        // Ads and the paid sessions they bring.
        for campaign in &CAMPAIGNS {
            if t < campaign.active.0 || t >= campaign.active.1 {
                continue;
            }
            if campaign.platform == "linkedin_ads" && day == self.end {
                continue; // LinkedIn's export for the last day has not landed yet.
            }
            let spend = campaign.daily_budget * self.scale * factor.sqrt() * self.rng.noise(0.08);
            let cpc = campaign.cpc * self.rng.noise(0.1);
            let clicks = self.rng.round(spend / cpc) as i64;
            let ctr = campaign.ctr * self.rng.noise(0.1);
            let impressions = self.rng.round(clicks as f64 / ctr) as i64;
            let spend_cents = (spend * 100.0).round() as i128;
            let conversion_noise = self.rng.noise(0.3);
            let platform_conversions =
                self.rng.round(clicks as f64 * 0.045 * conversion_noise) as i64;
            let row = AdRow {
                date,
                platform: campaign.platform,
                campaign_id: campaign.id,
                campaign_name: campaign.name,
                channel: campaign.channel,
                impressions,
                clicks,
                spend_cents,
                platform_conversions,
            };
            let duplicate = self.rng.chance(0.006);
            if campaign.platform == "meta_ads" && day == self.late_day {
                self.late_ads.push(row);
            } else {
                if duplicate {
                    self.ads.push(row.clone());
                }
                self.ads.push(row);
            }
            let sessions = self
                .rng
                .round(clicks as f64 * session_match_rate(campaign.platform))
                as usize;
            for _ in 0..sessions {
                let (source, medium) = match campaign.platform {
                    "google_ads" => ("google", "cpc"),
                    "meta_ads" => ("facebook", "paid_social"),
                    _ => ("linkedin", "paid_social"),
                };
                let source = self.messy_case(source);
                let medium = self.messy_case(medium);
                let utm_campaign = self.messy_case(campaign.id);
                let content = format!("ad-{}", 1 + self.rng.below(4));
                self.session(
                    day,
                    campaign.channel,
                    Some(campaign.platform),
                    Some(source),
                    Some(medium),
                    Some(utm_campaign),
                    Some(content),
                    None,
                );
            }
        }

        // Organic traffic.
        for (channel, per_day, source, medium) in ORGANIC {
            let noise = self.rng.noise(0.1);
            let count = self.rng.round(per_day * self.scale * factor * noise) as usize;
            for _ in 0..count {
                let source = source.map(|s| self.messy_case(s));
                let medium = medium.map(|m| self.messy_case(m));
                self.session(day, channel, None, source, medium, None, None, None);
            }
        }

        // Email: weekly newsletter on Tuesdays, nurture sequence for new contacts.
        let day_start = local_micros(self.tz, day, NaiveTime::MIN);
        let day_end = day_start + 86_400_000_000;
        if day.weekday() == Weekday::Tue {
            let campaign = format!(
                "newsletter-{}-W{:02}",
                day.iso_week().year(),
                day.iso_week().week()
            );
            let sent_at = local_micros(
                self.tz,
                day,
                NaiveTime::from_hms_opt(10, 0, 0).unwrap_or(NaiveTime::MIN),
            );
            let recipients: Vec<String> = self
                .subscribed
                .iter()
                .filter(|(_, subscribed)| *subscribed)
                .map(|(contact, _)| contact.clone())
                .collect();
            for contact in recipients {
                if self.rng.chance(0.7) {
                    self.send(&campaign, &contact, sent_at);
                }
            }
        }
        let due: Vec<(i64, String, u8)> = self
            .pending_nurture
            .iter()
            .filter(|(at, _, _)| *at < day_end)
            .cloned()
            .collect();
        self.pending_nurture.retain(|(at, _, _)| *at >= day_end);
        for (at, contact, step) in due {
            self.send(&format!("nurture-{step}"), &contact, at);
        }
        let clicks: Vec<(i64, String)> = self
            .email_clicks
            .iter()
            .filter(|(at, _)| *at < day_end)
            .cloned()
            .collect();
        self.email_clicks.retain(|(at, _)| *at >= day_end);
        for (at, contact) in clicks {
            let campaign = if self.rng.chance(0.5) {
                "newsletter"
            } else {
                "nurture"
            };
            let source = self.messy_case("newsletter");
            self.session(
                day,
                "email",
                None,
                Some(source),
                Some("email".into()),
                Some(campaign.into()),
                None,
                Some((at, contact)),
            );
        }

        // Contacts from outside the website: events, outbound, partners.
        let offline = self.rng.round(2.0 * self.scale * factor.min(1.2)) as usize;
        for _ in 0..offline {
            let source = self
                .rng
                .pick(&[("event", 3.0), ("outbound", 5.0), ("partner", 2.0)]);
            let time = self.time_of_day();
            let at = local_micros(self.tz, day, time);
            self.new_contact(at, source);
        }
    }

    /// Returns `text` in its usual lowercase, or (6% of the time) in another case.
    pub(super) fn messy_case(&mut self, text: &str) -> String {
        if !self.rng.chance(0.06) {
            return text.to_string();
        }
        if self.rng.chance(0.5) {
            text.to_uppercase()
        } else {
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default()
        }
    }

    /// Returns the global index of the visitor of a new session: the contact's own visitor
    /// (while still in the pool), a recent visitor returning, or a new one.
    pub(super) fn visitor(&mut self, known_contact: Option<&str>) -> usize {
        if let Some(contact) = known_contact {
            if let Some(index) = self.contact_visitor.get(contact) {
                if *index >= self.visitor_base {
                    return *index;
                }
            }
        }
        if !self.visitors.is_empty() && known_contact.is_none() && self.rng.chance(0.32) {
            let recent = self.visitors.len().min(4000);
            return self.visitor_base + self.visitors.len() - 1 - self.rng.below(recent);
        }
        let anonymous_id = self.id("A");
        self.visitors.push_back(Visitor {
            anonymous_id,
            contact_id: known_contact.map(str::to_string),
        });
        let index = self.visitor_base + self.visitors.len() - 1;
        if let Some(contact) = known_contact {
            self.contact_visitor.insert(contact.to_string(), index);
        }
        index
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn session(
        &mut self,
        day: NaiveDate,
        channel: &'static str,
        platform: Option<&str>,
        utm_source: Option<String>,
        utm_medium: Option<String>,
        utm_campaign: Option<String>,
        utm_content: Option<String>,
        email_click: Option<(i64, String)>,
    ) {
        let started_at = match &email_click {
            Some((at, _)) => *at,
            None => {
                let time = self.time_of_day();
                local_micros(self.tz, day, time)
            }
        };
        if started_at >= self.horizon {
            return;
        }
        let visitor_index = self.visitor(email_click.as_ref().map(|(_, contact)| contact.as_str()));
        let visitor = self.visitors[visitor_index - self.visitor_base].clone();
        let session_id = self.id("S");
        let landing_page = self.rng.pick(&PAGES);
        let pageviews = 1 + self.rng.exponential(1.4) as i32;
        let mut contact_id = visitor.contact_id.clone();

        let mut at = started_at;
        let mut page = landing_page;
        for _ in 0..pageviews {
            let event_id = self.id("E");
            self.events.push(EventRow {
                event_id,
                session_id: session_id.clone(),
                anonymous_id: visitor.anonymous_id.clone(),
                contact_id: contact_id.clone(),
                occurred_at: at,
                name: "page_view",
                page,
            });
            if page == "/pricing" && self.rng.chance(0.9) {
                let event_id = self.id("E");
                self.events.push(EventRow {
                    event_id,
                    session_id: session_id.clone(),
                    anonymous_id: visitor.anonymous_id.clone(),
                    contact_id: contact_id.clone(),
                    occurred_at: at + 2_000_000,
                    name: "pricing_view",
                    page,
                });
            }
            at += (self.rng.exponential(45.0) * 1e6) as i64 + 1_000_000;
            page = self.rng.pick(&PAGES);
        }
        for (name, rate, page) in [
            ("content_download", 0.02, "/blog/attribution-guide"),
            ("webinar_signup", 0.008, "/webinars"),
        ] {
            let rate = if name == "webinar_signup"
                && utm_campaign
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case("meta-webinar"))
            {
                0.06
            } else {
                rate
            };
            if self.rng.chance(rate) {
                let event_id = self.id("E");
                self.events.push(EventRow {
                    event_id,
                    session_id: session_id.clone(),
                    anonymous_id: visitor.anonymous_id.clone(),
                    contact_id: contact_id.clone(),
                    occurred_at: at,
                    name,
                    page,
                });
                at += 5_000_000;
            }
        }
        if self.rng.chance(form_rate(channel, platform)) {
            let demo = self.rng.chance(0.25);
            if contact_id.is_none() {
                let lead_source = channel.to_string();
                let contact = self.new_contact(at, &lead_source);
                self.visitors[visitor_index - self.visitor_base].contact_id = Some(contact.clone());
                self.contact_visitor.insert(contact.clone(), visitor_index);
                contact_id = Some(contact);
            }
            for name in if demo {
                vec!["form_submit", "demo_request"]
            } else {
                vec!["form_submit"]
            } {
                let event_id = self.id("E");
                self.events.push(EventRow {
                    event_id,
                    session_id: session_id.clone(),
                    anonymous_id: visitor.anonymous_id.clone(),
                    contact_id: contact_id.clone(),
                    occurred_at: at,
                    name,
                    page: if demo { "/demo" } else { "/contact" },
                });
            }
        }
        let row = SessionRow {
            session_id,
            anonymous_id: visitor.anonymous_id,
            contact_id,
            started_at,
            landing_page,
            utm_source,
            utm_medium,
            utm_campaign,
            utm_content,
            channel,
            device: self.rng.pick(&DEVICES),
            country: self.rng.pick(&COUNTRIES),
            pageviews,
        };
        if self.rng.chance(0.004) {
            self.sessions.push(row.clone());
        }
        self.sessions.push(row);
    }

    /// Creates a contact and plays out its whole funnel (stages, opportunity, emails).
    pub(super) fn new_contact(&mut self, at: i64, lead_source: &str) -> String {
        let contact_id = self.id("C");
        let company_size = self.rng.pick(&COMPANY_SIZES);
        let region = match self.rng.pick(&COUNTRIES) {
            "US" | "CA" => "NA",
            "BR" => "LATAM",
            "IN" | "AU" => "APAC",
            _ => "EMEA",
        };
        self.contacts.push(ContactRow {
            contact_id: contact_id.clone(),
            created_at: at,
            lead_source: lead_source.to_string(),
            company_size,
            industry: self.rng.pick(&INDUSTRIES),
            region,
            owner: OWNERS[self.rng.below(OWNERS.len())],
        });
        self.stage(&contact_id, at, None, "lead");
        self.subscribed_index
            .insert(contact_id.clone(), self.subscribed.len());
        self.subscribed.push((contact_id.clone(), true));
        for (step, days) in [(1u8, 1.0), (2, 4.0), (3, 9.0)] {
            self.pending_nurture
                .push((at + (days * 86_400e6) as i64, contact_id.clone(), step));
        }

        let size_boost = match company_size {
            "1-10" => 0.6,
            "11-50" => 0.9,
            "51-200" => 1.1,
            "201-1000" => 1.25,
            _ => 1.35,
        };
        let day = 86_400e6;
        if !self
            .rng
            .chance((mql_rate(lead_source) * size_boost).min(0.95))
        {
            return contact_id;
        }
        let mql_at = at + (self.rng.exponential(3.0) * day) as i64 + 3_600_000_000;
        self.stage(&contact_id, mql_at, Some("lead"), "mql");
        if !self.rng.chance(0.45) {
            return contact_id;
        }
        let sql_at = mql_at + ((2.0 + self.rng.exponential(5.0)) * day) as i64;
        self.stage(&contact_id, sql_at, Some("mql"), "sql");
        if !self.rng.chance(0.68) {
            return contact_id;
        }
        let opportunity_at = sql_at + ((1.0 + self.rng.exponential(4.0)) * day) as i64;
        self.stage(&contact_id, opportunity_at, Some("sql"), "opportunity");
        if opportunity_at >= self.horizon {
            return contact_id;
        }
        let base = match company_size {
            "1-10" => 6_000.0,
            "11-50" => 14_000.0,
            "51-200" => 32_000.0,
            "201-1000" => 70_000.0,
            _ => 140_000.0,
        };
        let amount_cents = ((base * self.rng.noise(0.35) / 10.0).round() * 1000.0) as i128;
        let closed_at = opportunity_at + ((20.0 + self.rng.exponential(35.0)) * day) as i64;
        let won = self.rng.chance(0.27 * size_boost.min(1.2));
        let opportunity_id = self.id("O");
        let (status, closed) = if closed_at >= self.horizon {
            ("open", None)
        } else if won {
            self.stage(&contact_id, closed_at, Some("opportunity"), "customer");
            ("won", Some(closed_at))
        } else {
            ("lost", Some(closed_at))
        };
        self.opportunities.push(OpportunityRow {
            opportunity_id,
            contact_id: contact_id.clone(),
            created_at: opportunity_at,
            closed_at: closed,
            status,
            amount_cents,
        });
        contact_id
    }

    pub(super) fn stage(
        &mut self,
        contact_id: &str,
        at: i64,
        from: Option<&'static str>,
        to: &'static str,
    ) {
        if at < self.horizon {
            self.stages.push(StageRow {
                contact_id: contact_id.to_string(),
                changed_at: at,
                from_stage: from,
                to_stage: to,
            });
        }
    }

    pub(super) fn send(&mut self, campaign: &str, contact: &str, sent_at: i64) {
        if sent_at >= self.horizon {
            return;
        }
        let send_id = self.id("M");
        let delivered = self.rng.chance(0.97);
        let opened_at = (delivered && self.rng.chance(0.27))
            .then(|| sent_at + (self.rng.exponential(8.0) * 3.6e9) as i64);
        let clicked_at = opened_at
            .filter(|_| self.rng.chance(0.16))
            .map(|at| at + (self.rng.exponential(2.0) * 6e7) as i64);
        let unsubscribed = delivered && self.rng.chance(0.004);
        let opened_at = opened_at.filter(|at| *at < self.horizon);
        let clicked_at = clicked_at.filter(|at| *at < self.horizon);
        if let Some(at) = clicked_at {
            self.email_clicks.push((at, contact.to_string()));
        }
        if unsubscribed {
            if let Some(index) = self.subscribed_index.get(contact) {
                self.subscribed[*index].1 = false;
            }
        }
        self.sends.push(SendRow {
            send_id,
            email_campaign_id: campaign.to_string(),
            contact_id: contact.to_string(),
            sent_at,
            delivered,
            opened_at,
            clicked_at,
            unsubscribed,
        });
    }

    pub(super) fn flush_month(&mut self, label: &str, writer: &mut Writer) -> Result<()> {
        let ads = std::mem::take(&mut self.ads);
        writer.write(
            "ads.campaign_daily",
            &format!("month={label}/part-0.parquet"),
            ads_batch(&ads)?,
        )?;
        if !self.late_ads.is_empty() && self.late_day.format("%Y-%m").to_string() == label {
            let late = std::mem::take(&mut self.late_ads);
            let name = format!("month={label}/late-{}.parquet", self.late_day);
            writer.write("ads.campaign_daily", &name, ads_batch(&late)?)?;
        }
        let sessions = std::mem::take(&mut self.sessions);
        writer.write(
            "analytics.sessions",
            &format!("sessions-{label}.parquet"),
            sessions_batch(&sessions)?,
        )?;
        let events = std::mem::take(&mut self.events);
        writer.write(
            "analytics.events",
            &format!("events-{label}.parquet"),
            events_batch(&events)?,
        )?;
        let sends = std::mem::take(&mut self.sends);
        writer.write(
            "email.sends",
            &format!("sends-{label}.parquet"),
            sends_batch(&sends)?,
        )?;
        // Keep the visitor pool bounded: old visitors rarely return after months.
        while self.visitors.len() > 200_000 {
            self.visitors.pop_front();
            self.visitor_base += 1;
        }
        let base = self.visitor_base;
        self.contact_visitor.retain(|_, index| *index >= base);
        Ok(())
    }

    pub(super) fn finish(&mut self, writer: &mut Writer) -> Result<()> {
        writer.write(
            "crm.contacts",
            "contacts.parquet",
            contacts_batch(&self.contacts)?,
        )?;
        writer.write(
            "crm.lifecycle_changes",
            "lifecycle_changes.parquet",
            stages_batch(&self.stages)?,
        )?;
        writer.write(
            "crm.opportunities",
            "opportunities.parquet",
            opportunities_batch(&self.opportunities)?,
        )?;
        Ok(())
    }
}

/// Microseconds since the epoch of a local date and time in `tz` (the earlier instant when a
/// DST change makes it ambiguous, the next valid one when it falls in a gap).
pub(super) fn local_micros(tz: Tz, day: NaiveDate, time: NaiveTime) -> i64 {
    let naive = NaiveDateTime::new(day, time);
    let local = tz.from_local_datetime(&naive).earliest().or_else(|| {
        tz.from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
    });
    match local {
        Some(instant) => instant.timestamp_micros(),
        None => naive.and_utc().timestamp_micros(),
    }
}
