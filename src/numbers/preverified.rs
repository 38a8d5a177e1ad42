//! A business portfolio's pool of pre-verified numbers: its writes are sent once, like a
//! number's (see `writes.rs`); its reads go straight to Meta (the pool is read rarely,
//! by people, and changes under them).

use super::idempotency::spawned;
use super::writes::{succeeded, unanswered};
use super::{Error, Numbers, Write, routed};
use crate::model::{Deadline, PreverifiedNumber, PreverifiedPage};

impl Numbers {
    /// Adds a number to a business's pre-verified pool, then reads it back (Meta answers
    /// only its id); if that read fails, what is known without it.
    pub async fn add_preverified(
        &self,
        business_id: &str,
        phone_number: &str,
        deadline: Deadline,
    ) -> Result<PreverifiedNumber, Error> {
        let route = self.keys.for_business(business_id)?;
        let (graph, keys) = (self.graph.clone(), self.keys.clone());
        let (business, phone) = (business_id.to_owned(), phone_number.to_owned());
        let by = route.clone();
        let added = spawned(Write::AddPreverified, async move {
            let credential = by.credential();
            let sent = graph.add_preverified_number(&business, &credential, &phone, deadline);
            let sent = async { sent.await.map_err(|e| unanswered(Write::AddPreverified, e)) };
            routed(&keys, &by, sent).await
        })
        .await?;
        self.keys.learn_preverified(business_id, [added.clone()]);
        let credential = route.credential();
        match self
            .graph
            .preverified_number(&added, &credential, deadline)
            .await
        {
            Ok(number) => Ok(number),
            Err(e) => {
                tracing::warn!(preverified_id = %added, error = %e, "cannot read back the pre-verified number just added");
                Ok(PreverifiedNumber {
                    id: added,
                    phone_number: phone_number.to_owned(),
                    ..PreverifiedNumber::default()
                })
            }
        }
    }

    /// One page of a business's pre-verified pool (`status`: only numbers in it).
    pub async fn list_preverified(
        &self,
        business_id: &str,
        page_size: u32,
        cursor: Option<&str>,
        status: Option<&str>,
        deadline: Deadline,
    ) -> Result<PreverifiedPage, Error> {
        let route = self.keys.for_business(business_id)?;
        let credential = route.credential();
        let read = async {
            Ok(self
                .graph
                .list_preverified_numbers(
                    business_id,
                    &credential,
                    page_size,
                    cursor,
                    status,
                    deadline,
                )
                .await?)
        };
        let page = routed(&self.keys, &route, read).await?;
        let ids = page.numbers.iter().map(|n| n.id.clone());
        self.keys.learn_preverified(business_id, ids);
        Ok(page)
    }

    /// Removes a number from its business's pre-verified pool, with the token of the
    /// business it was listed or added in (else the partner's).
    pub async fn delete_preverified(&self, id: &str, deadline: Deadline) -> Result<(), Error> {
        let (graph, keys) = (self.graph.clone(), self.keys.clone());
        let id = id.to_owned();
        let deleted = spawned(Write::DeletePreverified, async move {
            let route = keys.for_number_to_write(&id).await?;
            let credential = route.credential();
            let sent = async {
                let sent = graph.delete_preverified_number(&id, &credential, deadline);
                sent.await
                    .map_err(|e| unanswered(Write::DeletePreverified, e))
            };
            routed(&keys, &route, sent).await
        });
        succeeded(deleted).await
    }
}
