//! The simulated world: campaigns, channels and the rates that turn traffic into leads and
//! deals. Constants only, and the small functions that read them.

pub(super) struct Campaign {
    pub(super) platform: &'static str,
    pub(super) id: &'static str,
    pub(super) name: &'static str,
    pub(super) channel: &'static str,
    /// Active between these fractions of the period.
    pub(super) active: (f64, f64),
    pub(super) daily_budget: f64,
    pub(super) cpc: f64,
    pub(super) ctr: f64,
}

pub(super) const CAMPAIGNS: [Campaign; 10] = [
    Campaign {
        platform: "google_ads",
        id: "gads-brand",
        name: "Brand Search",
        channel: "paid_search",
        active: (0.0, 1.0),
        daily_budget: 120.0,
        cpc: 1.6,
        ctr: 0.082,
    },
    Campaign {
        platform: "google_ads",
        id: "gads-nonbrand",
        name: "Non-brand Search",
        channel: "paid_search",
        active: (0.0, 1.0),
        daily_budget: 420.0,
        cpc: 4.4,
        ctr: 0.031,
    },
    Campaign {
        platform: "google_ads",
        id: "gads-competitor",
        name: "Competitor Terms",
        channel: "paid_search",
        active: (0.38, 1.0),
        daily_budget: 150.0,
        cpc: 6.1,
        ctr: 0.024,
    },
    Campaign {
        platform: "google_ads",
        id: "gads-pmax",
        name: "Performance Max Test",
        channel: "paid_search",
        active: (0.55, 0.85),
        daily_budget: 200.0,
        cpc: 2.3,
        ctr: 0.012,
    },
    Campaign {
        platform: "meta_ads",
        id: "meta-retargeting",
        name: "Retargeting",
        channel: "paid_social",
        active: (0.0, 1.0),
        daily_budget: 90.0,
        cpc: 1.1,
        ctr: 0.011,
    },
    Campaign {
        platform: "meta_ads",
        id: "meta-prospecting",
        name: "Prospecting Lookalikes",
        channel: "paid_social",
        active: (0.0, 0.52),
        daily_budget: 160.0,
        cpc: 1.4,
        ctr: 0.008,
    },
    Campaign {
        platform: "meta_ads",
        id: "meta-webinar",
        name: "Webinar Series",
        channel: "paid_social",
        active: (0.30, 0.46),
        daily_budget: 110.0,
        cpc: 1.2,
        ctr: 0.009,
    },
    Campaign {
        platform: "linkedin_ads",
        id: "li-abm",
        name: "ABM Enterprise",
        channel: "paid_social",
        active: (0.0, 1.0),
        daily_budget: 380.0,
        cpc: 9.5,
        ctr: 0.0055,
    },
    Campaign {
        platform: "linkedin_ads",
        id: "li-leadgen",
        name: "Lead Gen Forms",
        channel: "paid_social",
        active: (0.20, 1.0),
        daily_budget: 280.0,
        cpc: 8.2,
        ctr: 0.0068,
    },
    Campaign {
        platform: "linkedin_ads",
        id: "li-retargeting",
        name: "Website Retargeting",
        channel: "paid_social",
        active: (0.50, 1.0),
        daily_budget: 110.0,
        cpc: 7.0,
        ctr: 0.0074,
    },
];

/// Share of ad clicks that arrive as analytics sessions (the rest are bots, bounces before the
/// tag fires, consent refusals): the gap the data-health section reports.
pub(super) fn session_match_rate(platform: &str) -> f64 {
    match platform {
        "google_ads" => 0.93,
        "meta_ads" => 0.71,
        _ => 0.84,
    }
}

/// Organic channels: (channel, sessions per day at scale 1, utm_source, utm_medium).
pub(super) const ORGANIC: [(&str, f64, Option<&str>, Option<&str>); 4] = [
    ("organic_search", 130.0, None, None),
    ("direct", 75.0, None, None),
    ("referral", 22.0, Some("g2"), Some("referral")),
    ("organic_social", 18.0, Some("linkedin"), Some("social")),
];

/// Probability a session of a channel has a form submit.
pub(super) fn form_rate(channel: &str, platform: Option<&str>) -> f64 {
    match (channel, platform) {
        ("paid_search", _) => 0.034,
        ("paid_social", Some("linkedin_ads")) => 0.041,
        ("paid_social", _) => 0.013,
        ("organic_search", _) => 0.024,
        ("direct", _) => 0.030,
        ("referral", _) => 0.036,
        ("email", _) => 0.028,
        _ => 0.010,
    }
}

/// Chance a new lead becomes an MQL, by channel.
pub(super) fn mql_rate(channel: &str) -> f64 {
    match channel {
        "paid_search" => 0.42,
        "paid_social" => 0.30,
        "organic_search" => 0.38,
        "direct" => 0.45,
        "referral" => 0.50,
        "email" => 0.40,
        "event" => 0.55,
        "outbound" => 0.35,
        _ => 0.25,
    }
}

pub(super) const PAGES: [(&str, f64); 8] = [
    ("/", 30.0),
    ("/pricing", 10.0),
    ("/product", 14.0),
    ("/blog/attribution-guide", 12.0),
    ("/blog/weekly-reporting", 9.0),
    ("/customers", 6.0),
    ("/webinars", 5.0),
    ("/demo", 4.0),
];
pub(super) const DEVICES: [(&str, f64); 3] = [("desktop", 62.0), ("mobile", 33.0), ("tablet", 5.0)];
pub(super) const COUNTRIES: [(&str, f64); 8] = [
    ("US", 52.0),
    ("GB", 10.0),
    ("DE", 8.0),
    ("CA", 7.0),
    ("FR", 5.0),
    ("IN", 7.0),
    ("AU", 5.0),
    ("BR", 6.0),
];
pub(super) const COMPANY_SIZES: [(&str, f64); 5] = [
    ("1-10", 18.0),
    ("11-50", 27.0),
    ("51-200", 26.0),
    ("201-1000", 18.0),
    ("1000+", 11.0),
];
pub(super) const INDUSTRIES: [(&str, f64); 6] = [
    ("software", 30.0),
    ("financial_services", 15.0),
    ("healthcare", 12.0),
    ("retail", 14.0),
    ("manufacturing", 16.0),
    ("education", 13.0),
];
pub(super) const OWNERS: [&str; 5] = [
    "avery.lee",
    "jordan.kim",
    "sam.patel",
    "riley.chen",
    "morgan.diaz",
];
