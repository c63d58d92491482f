//! Where the orders of a journal read trade, so that order updates are matched as the node
//! matches them: learned from the inserts the read goes past, and asked of the node (a local
//! read) for an update whose insert the journal no longer holds.

use qastore_client::Client;
use qastore_exchange::apply::Outcome;
use qastore_exchange::feed::{order_place, OrderPlace, OrderPlaces};
use qastore_exchange::record::Record;
use qastore_proto::v1 as pb;

/// The places of the orders one read has gone past.
#[derive(Debug, Default)]
pub(crate) struct Placer {
    places: OrderPlaces,
    /// Whether any filter checked needs places; when none does, nothing is kept or asked.
    active: bool,
}

impl Placer {
    /// A placer for a read whose filters need places when `active`.
    pub(crate) fn new(active: bool) -> Placer {
        Placer {
            places: OrderPlaces::new(),
            active,
        }
    }

    /// Goes past the event carrying `record` with `outcome`; answers the place it is matched
    /// on (an order update applied to its order), asking node `addr` when the read never saw
    /// the order's insert.
    pub(crate) async fn place(
        &mut self,
        client: &Client,
        addr: &str,
        record: &Record,
        outcome: Outcome,
    ) -> Result<Option<OrderPlace>, String> {
        if !self.active {
            return Ok(None);
        }
        self.places.learn(record, outcome);
        let Some((user, order_id)) = order_place::placed_order(record, outcome) else {
            return Ok(None);
        };
        if let Some(p) = self.places.get(user, order_id) {
            return Ok(Some(p.clone()));
        }
        let place = ask(client, addr, user, order_id).await?;
        if let Some(p) = &place {
            self.places.insert(user, order_id, p.clone());
        }
        Ok(place)
    }
}

/// The place of order `(user, order_id)` as node `addr` holds it.
async fn ask(
    client: &Client,
    addr: &str,
    user: &str,
    order_id: &str,
) -> Result<Option<OrderPlace>, String> {
    let mut store = client.store_at(addr).map_err(|e| e.to_string())?;
    let req = pb::GetOrderRequest {
        user_id: user.to_string(),
        order_id: order_id.to_string(),
        with_history: false,
        read: Some(pb::ReadOptions {
            consistency: pb::Consistency::Local as i32,
            ..Default::default()
        }),
    };
    let found = store
        .get_order(client.request(req))
        .await
        .map_err(|s| format!("order {user}/{order_id}: {}", s.message()))?
        .into_inner();
    Ok(found
        .order
        .and_then(|v| v.state)
        .and_then(|s| s.order)
        .map(|o| OrderPlace {
            exchange_id: o.exchange_id,
            instrument_id: o.instrument_id,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qastore_exchange::record::{samples, OrderUpdate};

    fn unreachable_client() -> Client {
        // Nothing listens there: a test passes only if it never asks the node.
        Client::new(&["127.0.0.1:1".to_string()], Default::default()).unwrap()
    }

    #[tokio::test]
    async fn updates_are_placed_from_inserts_read_before_without_asking_the_node() {
        let client = unreachable_client();
        let records = samples::records();
        let Some(Record::OrderInsert(insert)) = records.first() else {
            panic!("the samples start with an order insert");
        };
        let update = Record::OrderUpdate(OrderUpdate {
            user_id: insert.user_id.clone(),
            order_id: insert.order_id.clone(),
            ..OrderUpdate::default()
        });
        let inserted = Outcome::OrderInserted { merged_updates: 0 };
        let mut placer = Placer::new(true);
        let on_insert = placer
            .place(&client, "127.0.0.1:1", &records[0], inserted)
            .await
            .unwrap();
        assert_eq!(on_insert, None, "an insert carries its own place");
        let placed = placer
            .place(&client, "127.0.0.1:1", &update, Outcome::OrderUpdated)
            .await
            .unwrap();
        assert_eq!(placed, Some(OrderPlace::of(insert)));
        let parked = placer
            .place(&client, "127.0.0.1:1", &update, Outcome::UpdateParked)
            .await
            .unwrap();
        assert_eq!(parked, None, "a parked update has no known order");
        let mut idle = Placer::new(false);
        let unplaced = idle
            .place(&client, "127.0.0.1:1", &update, Outcome::OrderUpdated)
            .await
            .unwrap();
        assert_eq!(unplaced, None, "no filter needs places");
    }
}
