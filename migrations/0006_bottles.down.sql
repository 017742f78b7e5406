-- The bottles' lives are forgotten; proposals keep their queue keys.
DROP TRIGGER bottles_keep_their_proposals;
DROP TRIGGER proposals_have_a_bottle;
DROP TABLE bottles;
