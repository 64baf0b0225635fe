//! The object store under the data root (a local folder or an S3 prefix) and listing it.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore};

use crate::config::{Config, DataRoot};
use crate::error::{Error, Result};

/// Opens the object store for the data root; returns it, the key prefix and the URL base.
pub(super) fn open_store(config: &Config) -> Result<(Arc<dyn ObjectStore>, ObjectPath, String)> {
    open_store_at(&config.data_root, &config.s3)
}

/// Opens the object store of a root (a local folder or an S3 prefix): the store, the root path
/// inside it, and the URL scheme prefix. Used for the data root and the snapshot store.
pub fn open_store_at(
    root: &DataRoot,
    s3: &crate::config::S3Options,
) -> Result<(Arc<dyn ObjectStore>, ObjectPath, String)> {
    match root {
        DataRoot::Local(path) => {
            let root = ObjectPath::from_absolute_path(path).map_err(|error| {
                Error::input("config", format!("data root {}: {error}", path.display()))
            })?;
            let store: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
            // `file://` + "/" + absolute path without its leading slash.
            Ok((store, root, "file://".to_string()))
        }
        DataRoot::S3 { bucket, prefix } => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(s3.region.clone().unwrap_or_else(|| "us-east-1".to_string()))
                .with_allow_http(s3.allow_http);
            if let Some(endpoint) = &s3.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(key) = &s3.access_key_id {
                builder = builder.with_access_key_id(key);
            }
            if let Some(secret) = &s3.secret_access_key {
                builder = builder.with_secret_access_key(secret.expose());
            }
            let store = builder.build().map_err(|error| {
                Error::input(
                    "config",
                    format!("cannot configure S3 for bucket `{bucket}`: {error}"),
                )
            })?;
            Ok((
                Arc::new(store),
                ObjectPath::from(prefix.as_str()),
                format!("s3:/{}", format_args!("/{bucket}")),
            ))
        }
    }
}

/// Lists every object under the root; `None` when a local root folder does not exist.
pub(super) async fn list_all(
    store: &Arc<dyn ObjectStore>,
    root: &ObjectPath,
    data_root: &DataRoot,
) -> Result<Option<Vec<ObjectMeta>>> {
    if let DataRoot::Local(path) = data_root {
        if !path.is_dir() {
            return Ok(None);
        }
    }
    let prefix = if root.as_ref().is_empty() {
        None
    } else {
        Some(root)
    };
    let objects: Vec<ObjectMeta> = store.list(prefix).try_collect().await?;
    Ok(Some(objects))
}

/// Registers the data root's store in `runtime` when it is S3 (a local root needs nothing:
/// every runtime reads `file://`), so scans of `s3://bucket/...` reach it with `kpi.toml`'s
/// settings. The engine and the cluster roles share it.
pub fn register_data_store(
    config: &Config,
    runtime: &datafusion::execution::runtime_env::RuntimeEnv,
) -> Result<()> {
    if let DataRoot::S3 { .. } = &config.data_root {
        let (store, _, _) = open_store(config)?;
        register_store(config, runtime, store)?;
    }
    Ok(())
}

/// Registers `store` (the data root's, already open) in `runtime` for `s3://bucket` URLs when
/// the data root is S3.
pub(super) fn register_store(
    config: &Config,
    runtime: &datafusion::execution::runtime_env::RuntimeEnv,
    store: Arc<dyn ObjectStore>,
) -> Result<()> {
    if let DataRoot::S3 { bucket, .. } = &config.data_root {
        let url = url::Url::parse(&format!("s3://{bucket}")).map_err(|error| {
            Error::input("config", format!("bad bucket name `{bucket}`: {error}"))
        })?;
        runtime.register_object_store(&url, store);
    }
    Ok(())
}
