//! The admin API client the CLI uses, over the same types as the server.

use crate::api::*;
use crate::routes::WhoAmI;
use crate::signing;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api { status: u16, code: String, message: String },
    /// The server could not be reached or answered something unexpected.
    #[error("{0}")]
    Transport(String),
}

pub struct AdminClient {
    base: String,
    access_key: String,
    secret: String,
    http: reqwest::Client,
}

pub(crate) fn seg(s: &str) -> String {
    // Path segments are names validated server-side; encode anything odd so it cannot alter the path.
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl AdminClient {
    pub fn new(base: &str, access_key: &str, secret: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            access_key: access_key.to_owned(),
            secret: secret.to_owned(),
            http,
        })
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Option<T>, ClientError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Transport(e.to_string()))?,
            None => Vec::new(),
        };
        let ts = orbit_types::now_ms() / 1000;
        let auth = signing::authorization_header(&self.access_key, &self.secret, method.as_str(), path, ts, &bytes);
        let mut req = self.http.request(method, format!("{}{path}", self.base)).header("authorization", auth);
        if body.is_some() {
            req = req.header("content-type", "application/json").body(bytes);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Transport(format!("cannot reach the admin API at {}: {e}", self.base)))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ClientError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(match serde_json::from_str::<ErrorBody>(&text) {
                Ok(e) => ClientError::Api { status: status.as_u16(), code: e.error.code, message: e.error.message },
                Err(_) => ClientError::Transport(format!("HTTP {status}: {}", text.trim())),
            });
        }
        if status == reqwest::StatusCode::NO_CONTENT || text.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text).map(Some).map_err(|e| ClientError::Transport(format!("unexpected response: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call::<T>(Method::GET, path, None::<&()>)
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        self.call::<T>(Method::POST, path, Some(body))
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.call::<serde_json::Value>(Method::DELETE, path, None::<&()>).await.map(|_| ())
    }

    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.get("/admin/v1/whoami").await
    }

    pub async fn create_tenant(&self, name: &str, model: Option<&str>) -> Result<Tenant, ClientError> {
        self.post("/admin/v1/tenants", &CreateTenant { name: name.into(), model: model.map(Into::into) }).await
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, ClientError> {
        self.get("/admin/v1/tenants").await
    }

    pub async fn get_tenant(&self, name: &str) -> Result<Tenant, ClientError> {
        self.get(&format!("/admin/v1/tenants/{}", seg(name))).await
    }

    pub async fn delete_tenant(&self, name: &str, force: bool) -> Result<(), ClientError> {
        self.delete(&format!("/admin/v1/tenants/{}?force={force}", seg(name))).await
    }

    pub async fn create_user(&self, tenant: &str, name: &str, role: &str) -> Result<User, ClientError> {
        self.post(
            &format!("/admin/v1/tenants/{}/users", seg(tenant)),
            &CreateUser { name: name.into(), role: role.into() },
        )
        .await
    }

    pub async fn list_users(&self, tenant: &str) -> Result<Vec<User>, ClientError> {
        self.get(&format!("/admin/v1/tenants/{}/users", seg(tenant))).await
    }

    pub async fn delete_user(&self, tenant: &str, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/admin/v1/tenants/{}/users/{}", seg(tenant), seg(name))).await
    }

    pub async fn create_key(&self, tenant: &str, user: &str) -> Result<NewAccessKey, ClientError> {
        self.post(&format!("/admin/v1/tenants/{}/users/{}/keys", seg(tenant), seg(user)), &serde_json::json!({})).await
    }

    pub async fn list_keys(&self, tenant: &str, user: Option<&str>) -> Result<Vec<AccessKey>, ClientError> {
        let q = user.map(|u| format!("?user={}", seg(u))).unwrap_or_default();
        self.get(&format!("/admin/v1/tenants/{}/keys{q}", seg(tenant))).await
    }

    pub async fn delete_key(&self, tenant: &str, key: &str) -> Result<(), ClientError> {
        self.delete(&format!("/admin/v1/tenants/{}/keys/{}", seg(tenant), seg(key))).await
    }

    pub async fn create_bucket(
        &self,
        tenant: &str,
        name: &str,
        backend: Option<&str>,
        home_site: Option<&str>,
    ) -> Result<Bucket, ClientError> {
        let body = CreateBucket {
            name: name.into(),
            backend: backend.map(Into::into),
            location_prefix: None,
            mode: None,
            home_site: home_site.map(Into::into),
        };
        self.post(&format!("/admin/v1/tenants/{}/buckets", seg(tenant)), &body).await
    }

    /// Create a bucket over an existing location of a backend (operators only).
    pub async fn create_mapped_bucket(
        &self,
        tenant: &str,
        name: &str,
        backend: Option<&str>,
        location_prefix: &str,
        mode: Option<&str>,
    ) -> Result<Bucket, ClientError> {
        let body = CreateBucket {
            name: name.into(),
            backend: backend.map(Into::into),
            location_prefix: Some(location_prefix.into()),
            mode: mode.map(Into::into),
            home_site: None,
        };
        self.post(&format!("/admin/v1/tenants/{}/buckets", seg(tenant)), &body).await
    }

    pub async fn set_bucket_mode(&self, tenant: &str, bucket: &str, mode: &str) -> Result<Bucket, ClientError> {
        let path = format!("/admin/v1/tenants/{}/buckets/{}/mode", seg(tenant), seg(bucket));
        self.call::<Bucket>(Method::PUT, &path, Some(&BucketMode { mode: mode.into() }))
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }

    pub async fn list_buckets(&self, tenant: &str) -> Result<Vec<Bucket>, ClientError> {
        self.get(&format!("/admin/v1/tenants/{}/buckets", seg(tenant))).await
    }

    pub async fn delete_bucket(&self, tenant: &str, name: &str, force: bool) -> Result<(), ClientError> {
        self.delete(&format!("/admin/v1/tenants/{}/buckets/{}?force={force}", seg(tenant), seg(name))).await
    }

    pub async fn start_prefetch(&self, tenant: &str, body: &StartPrefetch) -> Result<PrefetchJob, ClientError> {
        self.post(&format!("/admin/v1/tenants/{}/prefetch", seg(tenant)), body).await
    }

    pub async fn list_prefetch(&self, tenant: &str) -> Result<Vec<PrefetchJob>, ClientError> {
        self.get(&format!("/admin/v1/tenants/{}/prefetch", seg(tenant))).await
    }

    pub async fn get_prefetch(&self, tenant: &str, id: &str) -> Result<PrefetchJob, ClientError> {
        self.get(&format!("/admin/v1/tenants/{}/prefetch/{}", seg(tenant), seg(id))).await
    }

    pub async fn cancel_prefetch(&self, tenant: &str, id: &str) -> Result<PrefetchJob, ClientError> {
        self.call::<PrefetchJob>(
            Method::DELETE,
            &format!("/admin/v1/tenants/{}/prefetch/{}", seg(tenant), seg(id)),
            None::<&()>,
        )
        .await?
        .ok_or_else(|| ClientError::Transport("empty response".into()))
    }

    pub async fn set_bucket_cache(
        &self,
        tenant: &str,
        bucket: &str,
        cache: &BucketCache,
    ) -> Result<Bucket, ClientError> {
        let path = format!("/admin/v1/tenants/{}/buckets/{}/cache", seg(tenant), seg(bucket));
        self.call::<Bucket>(Method::PUT, &path, Some(cache))
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }

    pub async fn pin_prefix(&self, tenant: &str, bucket: &str, prefix: &str) -> Result<Pinned, ClientError> {
        let path = format!("/admin/v1/tenants/{}/buckets/{}/pins", seg(tenant), seg(bucket));
        self.post(&path, &PinPrefix { prefix: prefix.to_owned() }).await
    }

    pub async fn unpin_prefix(&self, tenant: &str, bucket: &str, prefix: &str) -> Result<Bucket, ClientError> {
        let path = format!("/admin/v1/tenants/{}/buckets/{}/pins?prefix={}", seg(tenant), seg(bucket), seg(prefix));
        self.call::<Bucket>(Method::DELETE, &path, None::<&()>)
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }

    pub async fn tenant_cache(&self, tenant: &str) -> Result<TenantCache, ClientError> {
        self.get(&format!("/admin/v1/tenants/{}/cache", seg(tenant))).await
    }

    pub async fn set_cache_share(&self, tenant: &str, ram_bytes: Option<u64>) -> Result<Tenant, ClientError> {
        let path = format!("/admin/v1/tenants/{}/cache-share", seg(tenant));
        self.call::<Tenant>(Method::PUT, &path, Some(&CacheShare { ram_bytes }))
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }

    async fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        self.call::<T>(Method::PUT, path, Some(body))
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }

    pub async fn audit_list(&self, q: &AuditListQuery) -> Result<Vec<AuditRecord>, ClientError> {
        let mut params = Vec::new();
        for (k, v) in [("tenant", &q.tenant), ("user", &q.user), ("action", &q.action)] {
            if let Some(v) = v {
                params.push(format!("{k}={}", seg(v)));
            }
        }
        for (k, v) in [("since_ms", q.since_ms), ("until_ms", q.until_ms)] {
            if let Some(v) = v {
                params.push(format!("{k}={v}"));
            }
        }
        if let Some(l) = q.limit {
            params.push(format!("limit={l}"));
        }
        let qs = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
        self.get(&format!("/admin/v1/audit{qs}")).await
    }

    pub async fn audit_verify(&self, tenant: Option<&str>) -> Result<AuditVerification, ClientError> {
        let qs = tenant.map(|t| format!("?tenant={}", seg(t))).unwrap_or_default();
        self.get(&format!("/admin/v1/audit/verify{qs}")).await
    }

    pub async fn audit_settings(&self, tenant: &str) -> Result<AuditSettingsBody, ClientError> {
        self.get(&format!("/admin/v1/tenants/{}/audit-settings", seg(tenant))).await
    }

    pub async fn set_audit_settings(&self, tenant: &str, data_access: bool) -> Result<AuditSettingsBody, ClientError> {
        self.put(&format!("/admin/v1/tenants/{}/audit-settings", seg(tenant)), &AuditSettingsBody { data_access }).await
    }

    pub async fn limits(&self, tenant: &str) -> Result<Limits, ClientError> {
        self.get(&format!("/admin/v1/tenants/{}/limits", seg(tenant))).await
    }

    pub async fn set_limits(&self, tenant: &str, limits: &Limits) -> Result<Limits, ClientError> {
        self.put(&format!("/admin/v1/tenants/{}/limits", seg(tenant)), limits).await
    }

    pub async fn list_grants(&self, tenant: &str, user: &str) -> Result<Vec<GrantBody>, ClientError> {
        self.get(&format!("/admin/v1/tenants/{}/users/{}/grants", seg(tenant), seg(user))).await
    }

    pub async fn add_grant(&self, tenant: &str, user: &str, grant: &GrantBody) -> Result<Vec<GrantBody>, ClientError> {
        self.post(&format!("/admin/v1/tenants/{}/users/{}/grants", seg(tenant), seg(user)), grant).await
    }

    pub async fn remove_grant(&self, tenant: &str, user: &str, g: &GrantBody) -> Result<Vec<GrantBody>, ClientError> {
        let prefix = g.prefix.as_deref().map(|p| format!("&prefix={}", seg(p))).unwrap_or_default();
        let path = format!(
            "/admin/v1/tenants/{}/users/{}/grants?bucket={}&access={}{prefix}",
            seg(tenant),
            seg(user),
            seg(&g.bucket),
            seg(&g.access)
        );
        self.call::<Vec<GrantBody>>(Method::DELETE, &path, None::<&()>)
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }
}

impl AdminClient {
    fn qos_path(tenant: &str, bucket: Option<&str>) -> String {
        match bucket {
            Some(b) => format!("/admin/v1/tenants/{}/buckets/{}/qos", seg(tenant), seg(b)),
            None => format!("/admin/v1/tenants/{}/qos", seg(tenant)),
        }
    }

    pub async fn get_qos(&self, tenant: &str, bucket: Option<&str>) -> Result<Qos, ClientError> {
        self.get(&Self::qos_path(tenant, bucket)).await
    }

    pub async fn set_qos(&self, tenant: &str, bucket: Option<&str>, limits: &QosLimits) -> Result<Qos, ClientError> {
        self.call::<Qos>(Method::PUT, &Self::qos_path(tenant, bucket), Some(limits))
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }

    pub async fn clear_qos(&self, tenant: &str, bucket: Option<&str>) -> Result<(), ClientError> {
        self.delete(&Self::qos_path(tenant, bucket)).await
    }
}
